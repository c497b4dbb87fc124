#!/usr/bin/env python3
"""The Azure side of vplab: every lab endpoint on every lab address of the azure namespace.

  TCP 80           plain HTTP
  TCP 443, 8787,   TLS with a certificate chosen by SNI (lab public CA, or the Contoso inspection CA
  18881            for intercepted names), then HTTP/1.1: 200 or the per-host status of hosts.tsv,
                   and a real WebSocket upgrade (101, RFC 6455 Sec-WebSocket-Accept, echo, close)
  TCP 445          accepts and holds the connection (an SMB listener that speaks no SMB)
  UDP 5831         echoes datagrams, or is closed so the kernel answers ICMP port unreachable

Behaviour that changes with the scenario is read from --conf (key=value) at start and on SIGHUP
(udp_5831=echo|closed, intercept_tag=TAG, http_status=HOST:CODE[,HOST:CODE] overriding hosts.tsv);
after applying it the server writes the scenario name to --applied, which scenario.sh waits for.
"""

import argparse
import asyncio
import base64
import fnmatch
import hashlib
import os
import signal
import socket
import ssl
import struct
import sys
import time

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HEAD_LIMIT = 16 * 1024
READ_DEADLINE = 5.0
HOLD_DEADLINE = 10.0


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def load_hosts(path):
    """name pattern -> (http status, set of tags), from hosts.tsv."""
    hosts = {}
    with open(path) as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            status, tags = 200, set()
            for opt in fields[2:]:
                if opt.startswith("http="):
                    status = int(opt[5:])
                elif opt.startswith("tag="):
                    tags.update(opt[4:].split(","))
            hosts[fields[0]] = (status, tags)
    return hosts


def load_conf(path):
    conf = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "=" in line:
                key, value = line.split("=", 1)
                conf[key.strip()] = value.strip()
    return conf


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class Lab:
    def __init__(self, args):
        self.args = args
        self.hosts = load_hosts(args.hosts)
        self.public_ctx = self.tls_context("public-leaf")
        self.intercept_ctx = self.tls_context("contoso-leaf")
        self.public_ctx.sni_callback = self.pick_certificate
        self.conf = {}
        self.udp = None

    def tls_context(self, leaf):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(self.args.pki, leaf + ".pem"),
                            os.path.join(self.args.pki, leaf + ".key"))
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def lookup(self, host):
        host = (host or "").lower().rstrip(".")
        if host in self.hosts:
            return self.hosts[host]
        for pattern, value in self.hosts.items():
            if pattern.startswith("*.") and (host == pattern[2:] or fnmatch.fnmatch(host, pattern)):
                return value
        return (200, set())

    def status_overrides(self):
        overrides = {}
        for item in self.conf.get("http_status", "").split(","):
            name, _, code = item.strip().rpartition(":")
            if name and code.isdigit():
                overrides[name.lower()] = int(code)
        return overrides

    def intercepted(self, host):
        tag = self.conf.get("intercept_tag", "")
        return bool(tag) and tag in self.lookup(host)[1]

    def pick_certificate(self, sslobj, server_name, _ctx):
        if server_name and self.intercepted(server_name):
            sslobj.context = self.intercept_ctx
        return None

    async def apply(self):
        self.conf = load_conf(self.args.conf)
        want_udp = self.conf.get("udp_5831", "echo") == "echo"
        if want_udp and self.udp is None:
            self.udp = UdpEcho(5831)
        elif not want_udp and self.udp is not None:
            self.udp.close()
            self.udp = None
        scenario = self.conf.get("scenario", "?")
        with open(self.args.applied + ".tmp", "w") as f:
            f.write(scenario + "\n")
        os.replace(self.args.applied + ".tmp", self.args.applied)
        log("applied", scenario, self.conf)

    # --- TCP ----------------------------------------------------------------------------------
    async def http(self, reader, writer, port):
        peer = writer.get_extra_info("peername")
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_DEADLINE)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ConnectionError, ssl.SSLError):
            log(f"tcp {port} from {peer}: closed without a request")
            return
        lines = head.decode("latin-1").split("\r\n")
        method, path = (lines[0].split(" ") + ["", ""])[:2]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        host = headers.get("host", "").partition(":")[0]
        if "websocket" in headers.get("upgrade", "").lower() and "sec-websocket-key" in headers:
            writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                          f"{ws_accept(headers['sec-websocket-key'])}\r\n\r\n").encode())
            await writer.drain()
            log(f"tcp {port} from {peer}: {method} {host}{path} -> 101 websocket")
            await self.websocket(reader, writer)
            return
        status = self.status_overrides().get(host.lower(), self.lookup(host)[0])
        body = f"vplab {host}{path} {status}\n".encode()
        writer.write((f"HTTP/1.1 {status} vplab\r\nContent-Type: text/plain\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\nServer: vplab\r\n\r\n")
                     .encode() + (body if method != "HEAD" else b""))
        await writer.drain()
        log(f"tcp {port} from {peer}: {method} {host}{path} -> {status}")

    async def websocket(self, reader, writer):
        """Echo text and binary frames, answer pings, and close on close or after a while."""
        deadline = time.monotonic() + HOLD_DEADLINE
        while time.monotonic() < deadline:
            try:
                b0, b1 = await asyncio.wait_for(reader.readexactly(2), deadline - time.monotonic())
                size = b1 & 0x7F
                if size == 126:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                elif size == 127:
                    size = int.from_bytes(await reader.readexactly(8), "big")
                if size > HEAD_LIMIT:
                    return
                mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
                data = bytes(c ^ mask[i % 4] for i, c in enumerate(await reader.readexactly(size)))
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ssl.SSLError):
                return
            opcode = b0 & 0x0F
            if opcode == 0x8:
                writer.write(b"\x88" + bytes([len(data)]) + data)
                await writer.drain()
                return
            reply = {0x1: 0x1, 0x2: 0x2, 0x9: 0xA}.get(opcode)
            if reply is not None and len(data) < 126:
                writer.write(bytes([0x80 | reply, len(data)]) + data)
                await writer.drain()

    async def hold(self, reader, writer, port):
        log(f"tcp {port} from {writer.get_extra_info('peername')}: accepted")
        try:
            await asyncio.wait_for(reader.read(HEAD_LIMIT), HOLD_DEADLINE)
        except (asyncio.TimeoutError, ConnectionError):
            pass

    def serve(self, handler, port):
        async def run(reader, writer):
            try:
                await handler(reader, writer, port)
            except Exception as e:  # one bad client must not take the server down
                log(f"tcp {port}: {type(e).__name__}: {e}")
            finally:
                writer.close()
        return run

    async def main(self):
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _l, ctx: log("asyncio:", ctx.get("message"),
                                                       ctx.get("exception", "")))
        await self.apply()
        servers = [await asyncio.start_server(self.serve(self.http, 80), "0.0.0.0", 80),
                   await asyncio.start_server(self.serve(self.hold, 445), "0.0.0.0", 445)]
        for port in (443, 8787, 18881):
            servers.append(await asyncio.start_server(
                self.serve(self.http, port), "0.0.0.0", port, ssl=self.public_ctx,
                ssl_handshake_timeout=READ_DEADLINE))
        reload = asyncio.Event()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, reload.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        log("listening on tcp 80 443 445 8787 18881, udp 5831")
        while not stop.is_set():
            waiters = [asyncio.ensure_future(reload.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            if reload.is_set():
                reload.clear()
                await self.apply()
        for s in servers:
            s.close()
        log("stopped")


class UdpEcho:
    """Echoes datagrams from the address they were sent to. Every lab address is local through one
    loopback prefix, so a socket bound to 0.0.0.0 would answer from the route's source address and
    a connected client would drop the answer: IP_PKTINFO carries the destination over."""

    IP_PKTINFO = 8  # linux/in.h; the socket module does not export it

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.IPPROTO_IP, self.IP_PKTINFO, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.setblocking(False)
        self.port = port
        asyncio.get_running_loop().add_reader(self.sock, self.readable)

    def readable(self):
        try:
            data, ancdata, _flags, addr = self.sock.recvmsg(HEAD_LIMIT, 256)
        except (BlockingIOError, ConnectionError):
            return
        reply_anc = []
        for level, kind, value in ancdata:
            if level == socket.IPPROTO_IP and kind == self.IP_PKTINFO and len(value) >= 12:
                # struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
                reply_anc = [(level, kind, struct.pack("=i4s4s", 0, value[8:12], bytes(4)))]
        self.sock.sendmsg([data], reply_anc, 0, addr)
        log(f"udp {self.port} from {addr}: {len(data)} bytes, echoed")

    def close(self):
        asyncio.get_running_loop().remove_reader(self.sock)
        self.sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hosts", required=True, help="tests/lab/hosts.tsv")
    p.add_argument("--pki", required=True, help="folder with public-leaf and contoso-leaf .pem/.key")
    p.add_argument("--conf", required=True, help="scenario knobs, key=value")
    p.add_argument("--applied", required=True, help="file the applied scenario name is written to")
    asyncio.run(Lab(p.parse_args()).main())


if __name__ == "__main__":
    main()
