//! The access tokens `tether login` keeps, per server, in the user's config dir
//! (`$XDG_CONFIG_HOME/tether/session.json`, else `~/.config/tether/session.json`), mode 0600.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(
            std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?,
        )
        .join(".config"),
    };
    Ok(base.join("tether").join("session.json"))
}

fn read_all() -> BTreeMap<String, String> {
    path()
        .ok()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The stored access token for `server`.
pub fn load(server: &str) -> Option<String> {
    read_all().remove(server)
}

/// Stores the access token for `server`.
pub fn store(server: &str, token: &str) -> anyhow::Result<()> {
    let mut all = read_all();
    all.insert(server.to_owned(), token.to_owned());
    let path = path()?;
    let dir = path.parent().context("config path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let tmp = dir.join(".session.json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&serde_json::to_vec(&all)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("failed to write {}", path.display()))?;
    Ok(())
}

/// Whether `token` (a JWT) expires within a minute, or cannot be read. Only the `exp`
/// claim is read; the server checks the signature.
pub fn expires_soon(token: &str, now_unix: u64) -> bool {
    let exp = token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|claims| claims["exp"].as_u64());
    exp.is_none_or(|exp| exp <= now_unix + 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "eyJhbGciOiJFZERTQSJ9.{}.sig",
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn expiry_is_read_from_the_exp_claim() {
        assert!(!expires_soon(&jwt(r#"{"exp":2000}"#), 1000));
        assert!(expires_soon(&jwt(r#"{"exp":2000}"#), 1950));
        assert!(expires_soon(&jwt(r#"{"exp":2000}"#), 3000));
        assert!(expires_soon(&jwt(r#"{"sub":"ann"}"#), 1000), "no exp");
        assert!(expires_soon("not a jwt", 1000));
    }
}
