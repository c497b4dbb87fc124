pub mod pki;
pub mod proxy;
pub mod web;
