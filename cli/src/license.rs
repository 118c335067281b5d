//! `tether license list|revoke` (admins): every license with its state, as a table, JSON
//! or CSV for a spreadsheet (all pages, fetched in turn), and revocation of one.

use tether_proto::api::{LicenseState, LicenseView};

use crate::client::Api;
use crate::failure::Failure;

/// Licenses fetched per request.
const PAGE: usize = 10_000;

/// Which licenses to list.
#[derive(Debug, clap::Args)]
pub struct Filter {
    /// Only those in this state: unused, active or revoked.
    #[arg(long)]
    state: Option<String>,
    /// Only this product's.
    #[arg(long)]
    product: Option<String>,
}

impl Filter {
    /// The query string of one page, after `after`.
    fn query(&self, after: Option<&str>) -> Result<String, Failure> {
        let mut query = format!("limit={PAGE}");
        if let Some(state) = &self.state {
            LicenseState::from_name(state).ok_or_else(|| {
                Failure::Invalid(format!(
                    "--state is unused, active or revoked, not {state:?}"
                ))
            })?;
            query.push_str(&format!("&state={state}"));
        }
        if let Some(product) = &self.product {
            if !product.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(Failure::Invalid(format!("not a product key: {product:?}")));
            }
            query.push_str(&format!("&product_key={product}"));
        }
        if let Some(after) = after {
            query.push_str(&format!("&after={after}"));
        }
        Ok(query)
    }
}

/// Every license the filter selects, page after page.
pub async fn all(api: &Api, filter: &Filter) -> Result<Vec<LicenseView>, Failure> {
    let mut out: Vec<LicenseView> = Vec::new();
    loop {
        let after = out.last().map(|l| l.uuid.clone());
        let page = api.licenses(&filter.query(after.as_deref())?).await?;
        let done = page.len() < PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Every license the filter selects as one CSV document (one header line).
pub async fn csv(api: &Api, filter: &Filter) -> Result<String, Failure> {
    let mut out = String::new();
    let mut after: Option<String> = None;
    loop {
        let page = api.licenses_csv(&filter.query(after.as_deref())?).await?;
        let mut lines = page.split_terminator("\r\n");
        let header = lines.next().unwrap_or_default();
        if out.is_empty() {
            out.push_str(header);
            out.push_str("\r\n");
        }
        let rows: Vec<&str> = lines.collect();
        for row in &rows {
            out.push_str(row);
            out.push_str("\r\n");
        }
        // The uuid is the first field, and never quoted (letters and digits).
        after = rows
            .last()
            .and_then(|r| r.split(',').next())
            .map(str::to_owned);
        if rows.len() < PAGE {
            return Ok(out);
        }
    }
}

/// A line per license for people.
pub fn table(licenses: &[LicenseView]) -> String {
    let mut out = format!("{} license(s)", licenses.len());
    for l in licenses {
        out.push_str(&format!(
            "\n{}  {}  {:<7}  {}  {}",
            l.uuid,
            l.product_key,
            l.state.name(),
            l.dev_id.as_deref().unwrap_or("-"),
            l.owner.as_deref().unwrap_or("-"),
        ));
    }
    out
}
