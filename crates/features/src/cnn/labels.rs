//! The 1000 ImageNet-1k class labels, in class-index order.
//!
//! `imagenet_labels.txt` was generated from torchvision's `_IMAGENET_CATEGORIES`
//! (Debian `python3-torchvision` 0.14.1, `torchvision/models/_meta.py`), one label a line.

use std::sync::OnceLock;

static LABELS_TXT: &str = include_str!("imagenet_labels.txt");

/// All 1000 labels; index = class.
pub fn imagenet_labels() -> &'static [&'static str] {
    static LABELS: OnceLock<Vec<&'static str>> = OnceLock::new();
    LABELS.get_or_init(|| LABELS_TXT.lines().collect())
}

/// The label of one class, if it exists.
pub fn imagenet_label(class: usize) -> Option<&'static str> {
    imagenet_labels().get(class).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_1000_labels() {
        assert_eq!(imagenet_labels().len(), 1000);
        assert_eq!(imagenet_label(967), Some("espresso"));
        assert_eq!(imagenet_label(281), Some("tabby"));
        assert_eq!(imagenet_label(1000), None);
    }
}
