//! The CLI side of vecdb's automatic index policy (`--index Auto`, the default): the
//! `--memory-budget` option, and waiting for background index builds at the end of a bulk
//! load so that the next command opens the saved graph instead of building it again.

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// The default `--index`: the automatic policy (exact below 10,000 vectors, then a graph built
/// in the background; an 8-bit graph with exact re-ranking past the memory budget).
pub const DEFAULT_INDEX: &str = "Auto";

/// `--index ARG` with `--memory-budget SIZE` written into every `Auto` spec it holds (one spec,
/// or `feature=spec` pairs separated by `;`). A budget without any `Auto` spec is an error: a
/// pinned spec does not follow a budget.
pub fn with_budget(index: &str, budget: Option<&str>) -> Result<String> {
    let Some(budget) = budget else { return Ok(index.to_string()) };
    if vecdb::collection::parse_size(budget).is_none_or(|b| b == 0) {
        bail!("--memory-budget '{budget}' is not a size (e.g. 4G, 512MiB, 2000000000)");
    }
    let is_auto = |spec: &str| vecdb::collection::AutoPolicy::parse(spec).is_some();
    let mut any = false;
    let parts: Vec<String> = index
        .split(';')
        .map(|part| {
            let (prefix, spec) = match part.split_once('=') {
                Some((name, spec)) if vecdb::collection::AutoPolicy::parse(part).is_none() => {
                    (format!("{name}="), spec)
                }
                _ => (String::new(), part),
            };
            if is_auto(spec) {
                any = true;
                let kept: Vec<&str> =
                    spec.split(',').filter(|s| !s.trim().to_ascii_lowercase().starts_with("budget=")).collect();
                format!("{prefix}{},budget={}", kept.join(","), budget.trim())
            } else {
                part.to_string()
            }
        })
        .collect();
    if !any {
        bail!("--memory-budget applies to the Auto index policy; --index '{index}' pins the index (use --index Auto)");
    }
    Ok(parts.join(";"))
}

/// Wait for the collection's background index builds, showing their progress on stderr
/// (nothing when `quiet` or none runs).
pub fn wait_for_builds(coll: &vecdb::Collection, quiet: bool) {
    if coll.index_builds().is_empty() {
        return;
    }
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} vectors  {msg}").expect("static template"),
    );
    coll.wait_for_index_builds(|builds| {
        if let Some((field, b)) = builds.first() {
            bar.set_length(b.total as u64);
            bar.set_position(b.done as u64);
            bar.set_message(format!("building the {} index of '{field}' (Auto policy)", b.spec));
        }
    });
    bar.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_goes_into_every_auto_spec() {
        assert_eq!(with_budget("Auto", None).unwrap(), "Auto");
        assert_eq!(with_budget("Auto", Some("4G")).unwrap(), "Auto,budget=4G");
        assert_eq!(with_budget("Auto,threshold=5,budget=1G", Some("2G")).unwrap(), "Auto,threshold=5,budget=2G");
        assert_eq!(with_budget("cnn=Auto;color=Flat", Some("1G")).unwrap(), "cnn=Auto,budget=1G;color=Flat");
        assert!(with_budget("HNSW32", Some("1G")).unwrap_err().to_string().contains("pins the index"));
        assert!(with_budget("Auto", Some("lots")).unwrap_err().to_string().contains("not a size"));
    }
}
