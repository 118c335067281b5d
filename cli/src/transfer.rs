//! `tether transfer offer|list|accept|decline|cancel`: hand a device to another account
//! without a factory reset, when both owners agree; the device stays bound and online.

use serde_json::{Value, json};
use tether_proto::api::TransferOffer;

use crate::client::Api;
use crate::failure::Failure;

/// What `tether transfer` can do.
#[derive(Debug, clap::Subcommand)]
pub enum TransferCommand {
    /// Offer one of your devices to another account, which has a day to accept it.
    Offer {
        /// Device id.
        id: String,
        /// The account that should own it.
        #[arg(long)]
        to: String,
    },
    /// List the offers made to you and by you.
    List,
    /// Accept a device offered to you: it is yours from now on, online as it was.
    Accept {
        /// Device id.
        id: String,
    },
    /// Decline a device offered to you.
    Decline {
        /// Device id.
        id: String,
    },
    /// Withdraw your offer of a device.
    Cancel {
        /// Device id.
        id: String,
    },
}

/// Runs `command`: its result as JSON and as a line for people.
pub async fn run(api: &Api, command: &TransferCommand) -> Result<(Value, String), Failure> {
    Ok(match command {
        TransferCommand::Offer { id, to } => {
            let offer = api.offer_transfer(id, to).await?;
            let text = format!(
                "offered {} to {}; they have {} to accept it (`tether transfer accept {}`)",
                offer.dev_id,
                offer.to,
                remaining(offer.expires_at),
                offer.dev_id
            );
            (json!(offer), text)
        }
        TransferCommand::List => {
            let offers = api.transfers().await?;
            let text = table(&offers);
            (json!(offers), text)
        }
        TransferCommand::Accept { id } => {
            api.answer_transfer(id, "accept").await?;
            (json!({"accepted": id}), format!("{id} is yours now"))
        }
        TransferCommand::Decline { id } => {
            api.answer_transfer(id, "decline").await?;
            (json!({"declined": id}), format!("declined {id}"))
        }
        TransferCommand::Cancel { id } => {
            api.cancel_transfer(id).await?;
            (
                json!({"cancelled": id}),
                format!("withdrew the offer of {id}"),
            )
        }
    })
}

fn table(offers: &[TransferOffer]) -> String {
    let mut out = format!("{} offer(s)", offers.len());
    for o in offers {
        out.push_str(&format!(
            "\n{}  from {}  to {}  {} left",
            o.dev_id,
            o.from,
            o.to,
            remaining(o.expires_at)
        ));
    }
    out
}

/// The time until `expires_at` (Unix seconds), as hours and minutes.
fn remaining(expires_at: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let left = expires_at.saturating_sub(now);
    format!("{} h {:02} min", left / 3600, left % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_both_accounts() {
        let far = u64::MAX / 2;
        let text = table(&[TransferOffer {
            dev_id: "tf0001".into(),
            from: "ann".into(),
            to: "bob".into(),
            expires_at: far,
        }]);
        assert!(
            text.starts_with("1 offer(s)\ntf0001  from ann  to bob  "),
            "{text}"
        );
        assert_eq!(remaining(0), "0 h 00 min");
    }
}
