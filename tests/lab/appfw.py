#!/usr/bin/env python3
"""vplab-fw's application rules: a transparent proxy for TCP 80 and 443 that behaves as Azure
Firewall's application rules do towards a client (scenario azure-firewall).

nftables in vplab-fw redirects the compute subnet's TCP 80 and 443 (to anything but the VNet's
own private ranges) here, so this process completes every TCP handshake itself, whatever the
rules say, as Azure Firewall does ("the Firewall itself responds to the client's TCP ping
request"). Then:
  - 443: reads the TLS ClientHello; its SNI on the allow list -> a connection to the original
    destination, and the bytes both ways; otherwise (or without SNI) a TCP reset, no alert.
  - 80: reads the request head; its Host on the allow list -> forwarded the same way; otherwise
    HTTP 470 with Azure Firewall's text/plain body "Action: Deny. Reason: No rule matched.
    Proceeding with default action."
Bounded: a ClientHello or request head of at most 16 KiB, 5 s to send it, 5 s to connect on.

Usage: appfw.py --allow FILE [--http-port 15080] [--tls-port 15443]
FILE: one rule per line, "tls NAME" or "http NAME" (NAME may be "*.domain"); '#' comments.
"""

import argparse
import asyncio
import socket
import struct
import sys

SO_ORIGINAL_DST = 80
MAX_HEAD = 16 * 1024
WAIT = 5.0
DENY_BODY = b"Action: Deny. Reason: No rule matched. Proceeding with default action."


def log(*parts):
    print("appfw:", *parts, flush=True)


def load_allow(path):
    rules = {"tls": [], "http": []}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if len(line) == 2 and line[0] in rules:
                rules[line[0]].append(line[1].lower())
    return rules


def allowed(name, names):
    name = (name or "").lower().rstrip(".")
    for n in names:
        if n == name or (n.startswith("*.") and name.endswith(n[1:])):
            return True
    return False


def original_dst(sock):
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


def client_hello_sni(data):
    """The server name of a TLS ClientHello record, or None."""
    try:
        if data[0] != 22 or data[5] != 1:
            return None
        i = 5 + 4 + 2 + 32  # record header, handshake header, version, random
        i += 1 + data[i]  # session id
        i += 2 + struct.unpack("!H", data[i:i + 2])[0]  # cipher suites
        i += 1 + data[i]  # compression methods
        end = i + 2 + struct.unpack("!H", data[i:i + 2])[0]
        i += 2
        while i + 4 <= end:
            kind, size = struct.unpack("!HH", data[i:i + 4])
            i += 4
            if kind == 0:  # server_name: list length, type 0 (host_name), length, name
                n = struct.unpack("!H", data[i + 3:i + 5])[0]
                return data[i + 5:i + 5 + n].decode("ascii", "replace")
            i += size
    except (IndexError, struct.error):
        return None
    return None


async def read_hello(reader):
    head = await reader.readexactly(5)
    size = struct.unpack("!H", head[3:5])[0]
    if size > MAX_HEAD:
        return head
    return head + await reader.readexactly(size)


async def read_head(reader):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
        chunk = await reader.read(4096)
        if not chunk:
            break
        data += chunk
    return data


def host_of(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host":
            host = value.strip().decode("ascii", "replace")
            return host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return None


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def forward(first, reader, writer, dst):
    try:
        up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*dst), WAIT)
    except (OSError, asyncio.TimeoutError):
        writer.transport.abort()
        return
    up_w.write(first)
    await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))


def reset(writer):
    sock = writer.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


def handler(kind, rules):
    async def handle(reader, writer):
        peer = writer.get_extra_info("peername")
        try:
            dst = original_dst(writer.get_extra_info("socket"))
            if kind == "tls":
                first = await asyncio.wait_for(read_hello(reader), WAIT)
                name = client_hello_sni(first)
                if not allowed(name, rules["tls"]):
                    log(f"deny tls {peer[0]} -> {dst[0]}:{dst[1]} sni={name!r}: reset")
                    return reset(writer)
            else:
                first = await asyncio.wait_for(read_head(reader), WAIT)
                name = host_of(first)
                if not allowed(name, rules["http"]):
                    log(f"deny http {peer[0]} -> {dst[0]}:{dst[1]} host={name!r}: 470")
                    writer.write(
                        b"HTTP/1.1 470 status code 470\r\nContent-Type: text/plain\r\n"
                        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(DENY_BODY)
                        + DENY_BODY
                    )
                    await writer.drain()
                    writer.close()
                    return
            log(f"allow {kind} {peer[0]} -> {dst[0]}:{dst[1]} {name}")
            await forward(first, reader, writer, dst)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
            log(f"{kind} {peer}: {e!r}")
            writer.transport.abort()

    return handle


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--allow", required=True)
    ap.add_argument("--http-port", type=int, default=15080)
    ap.add_argument("--tls-port", type=int, default=15443)
    args = ap.parse_args()
    rules = load_allow(args.allow)
    servers = [
        await asyncio.start_server(handler("http", rules), "0.0.0.0", args.http_port),
        await asyncio.start_server(handler("tls", rules), "0.0.0.0", args.tls_port),
    ]
    log(f"listening on {args.http_port} (http) and {args.tls_port} (tls):",
        f"{len(rules['tls'])} tls and {len(rules['http'])} http names allowed")
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
