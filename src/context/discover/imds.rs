//! The Azure Instance Metadata Service client: one HTTP/1.1 GET, direct (never through a proxy),
//! under one deadline that covers connect, request and the capped answer.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::net::dial;

/// The request path and API version (requirements, section 6).
pub const PATH: &str = "/metadata/instance?api-version=2021-02-01";

/// The instance answer is a few KiB; anything past this is not the IMDS we know.
pub const BODY_CAP: usize = 256 * 1024;

/// Why no usable answer came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Nothing answered: refused, unreachable, or silent past the deadline. Normal off Azure.
    Silent(String),
    /// Something answered, but not as IMDS does: worth a warning.
    Bad(String),
}

/// The fields of the instance answer that discovery uses; every one may be missing.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct Answer {
    #[serde(default)]
    pub compute: Compute,
    #[serde(default)]
    pub network: Network,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Compute {
    pub location: Option<String>,
    pub az_environment: Option<String>,
    /// The VM's name, subscription and resource group: what Network Watcher commands name.
    pub name: Option<String>,
    pub subscription_id: Option<String>,
    pub resource_group_name: Option<String>,
    /// The node's facts that explain a split across a fleet (`merge`).
    pub vm_size: Option<String>,
    pub zone: Option<String>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct Network {
    #[serde(default)]
    pub interface: Vec<Interface>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct Interface {
    #[serde(default)]
    pub ipv4: Ipv4,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct Ipv4 {
    #[serde(default, rename = "ipAddress")]
    pub ip_address: Vec<IpAddress>,
    #[serde(default)]
    pub subnet: Vec<Subnet>,
}

/// `{"address": "10.0.2.0", "prefix": "24"}`: IMDS writes the prefix length as a string.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct Subnet {
    pub address: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct IpAddress {
    #[serde(rename = "privateIpAddress")]
    pub private_ip_address: Option<String>,
}

impl Answer {
    /// The first private address of the first interface.
    pub fn private_ip(&self) -> Option<&str> {
        self.network
            .interface
            .first()?
            .ipv4
            .ip_address
            .first()?
            .private_ip_address
            .as_deref()
    }

    /// The first subnet of the first interface as `ADDRESS/PREFIX`.
    pub fn subnet(&self) -> Option<String> {
        let s = self.network.interface.first()?.ipv4.subnet.first()?;
        Some(format!(
            "{}/{}",
            s.address.as_deref()?.trim(),
            s.prefix.as_deref()?.trim()
        ))
    }
}

/// Parses an instance answer; unknown fields are ignored, missing ones are `None`.
pub fn parse(body: &[u8]) -> Result<Answer, String> {
    serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not the instance metadata JSON ({e})"))
}

/// Asks `addr` for the instance metadata; returns the body of a 200 answer.
pub async fn fetch(addr: SocketAddr, deadline: Duration) -> Result<Vec<u8>, FetchError> {
    let work = async {
        let stream = dial::connect_one(addr, deadline)
            .await
            .map_err(|e| FetchError::Silent(e.message))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| FetchError::Bad(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = hyper::Request::get(PATH)
            .header(hyper::header::HOST, addr.to_string())
            .header("Metadata", "true")
            .header(
                hyper::header::USER_AGENT,
                concat!("vnetprobe/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Bad(format!("building the request: {e}")))?;
        let response = sender.send_request(request).await.map_err(|e| {
            // A peer that closes or talks garbage: hyper says which.
            if e.is_incomplete_message() || e.is_canceled() {
                FetchError::Silent(format!("connection closed without an answer ({e})"))
            } else {
                FetchError::Bad(format!("the answer is not HTTP ({e})"))
            }
        })?;
        let status = response.status();
        if status != hyper::StatusCode::OK {
            return Err(FetchError::Bad(format!("HTTP status {status}")));
        }
        let body = Limited::new(response.into_body(), BODY_CAP)
            .collect()
            .await
            .map_err(|e| {
                FetchError::Bad(format!("reading the answer (cap {BODY_CAP} bytes): {e}"))
            })?;
        Ok(body.to_bytes().to_vec())
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Silent(format!(
            "no answer within {} ms",
            deadline.as_millis()
        ))),
    }
}

/// `fetch` from synchronous code, on a thread of its own so that it works inside or outside a
/// tokio runtime.
pub fn fetch_blocking(addr: SocketAddr, deadline: Duration) -> Result<Vec<u8>, FetchError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| FetchError::Silent(format!("starting a runtime: {e}")))?;
                runtime.block_on(fetch(addr, deadline))
            })
            .join()
            .unwrap_or_else(|_| Err(FetchError::Bad("the IMDS client panicked".into())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_used() {
        let a = parse(
            br#"{"compute":{"location":"westeurope","azEnvironment":"AzurePublicCloud","vmId":"x"},"network":{}}"#,
        )
        .unwrap();
        assert_eq!(a.compute.location.as_deref(), Some("westeurope"));
        assert_eq!(
            a.compute.az_environment.as_deref(),
            Some("AzurePublicCloud")
        );
    }

    #[test]
    fn missing_fields_are_none() {
        assert_eq!(parse(b"{}").unwrap(), Answer::default());
        assert_eq!(parse(br#"{"compute":{}}"#).unwrap(), Answer::default());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"<html>").is_err());
        assert!(parse(br#"{"compute":{"location":7}}"#).is_err());
    }
}
