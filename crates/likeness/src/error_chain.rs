//! One line for an error and its causes, as the CLI prints it and the API answers it.

/// The error's message followed by each cause that adds something: a cause whose text the
/// message already contains (a typed error that shows its source, e.g. "I/O error on X: no
/// space left") is not repeated.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !c.is_empty() && !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_shown_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "not a vecdb database");
        let e = anyhow::Error::new(vecdb::Error::Io { path: "/db/collections".into(), source: io });
        assert_eq!(error_chain(&e), "I/O error on /db/collections: not a vecdb database");
        let e = anyhow::anyhow!("disk full").context("cannot save the index");
        assert_eq!(error_chain(&e), "cannot save the index: disk full");
    }
}
