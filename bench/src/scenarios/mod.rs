//! The scenarios, one module each.

mod activation;
mod channel;
mod cluster;
mod component;
mod fleet;
mod footprint;
mod limits;
mod mosquitto;
mod pairing;
mod sessions;
mod tls;

use crate::report::Report;
use crate::{Options, Scenario};

/// Runs one scenario.
pub async fn run(scenario: Scenario, options: &Options) -> anyhow::Result<Report> {
    match scenario {
        Scenario::Activation => activation::run(options).await,
        Scenario::Component => component::run(options).await,
        Scenario::Channel => channel::run(options).await,
        Scenario::Pairing => pairing::run(options).await,
        Scenario::Sessions => sessions::run(options).await,
        Scenario::Fleet => fleet::run(options).await,
        Scenario::Footprint => footprint::run(options).await,
        Scenario::Limits => limits::run(options).await,
        Scenario::Tls => tls::run(options).await,
        Scenario::Cluster => cluster::run(options).await,
    }
}
