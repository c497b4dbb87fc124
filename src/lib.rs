//! vnetprobe: proves from inside an Azure virtual network that every path Azure Machine
//! Learning needs works, and explains each failure by its fix.
//!
//! Data flows one way: context + catalog -> targets -> runner -> probes (through net) ->
//! outcomes -> report -> renderers.

pub mod app;
pub mod catalog;
pub mod cli;
pub mod context;
pub mod log;
pub mod net;
pub mod probe;
pub mod report;
pub mod runner;
pub mod serve;
