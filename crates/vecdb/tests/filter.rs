//! Metadata filters: CLI and JSON parsing, matching (arrays, numbers, prefixes), errors.

use serde_json::{json, Value};
use vecdb::{Error, Filter, Metadata};

fn meta(v: Value) -> Metadata {
    v.as_object().unwrap().clone()
}

fn cat() -> Metadata {
    meta(json!({"label": "cat", "width": 640, "height": 480, "path": "/photos/2024/cat.jpg",
                "tags": ["tabby", "indoor"], "size": 1.5, "ok": true, "exif": {"camera": "X100"}}))
}
fn dog() -> Metadata {
    meta(json!({"label": "dog", "width": 1600, "path": "/other/dog.png", "tags": ["outdoor"], "ok": false}))
}

#[test]
fn cli_forms_parse_to_the_documented_filters() {
    assert_eq!(Filter::parse("label=cat").unwrap(), Filter::Eq("label".into(), json!("cat")));
    assert_eq!(
        Filter::parse(" label != cat ").unwrap(),
        Filter::Not(Box::new(Filter::Eq("label".into(), json!("cat"))))
    );
    assert_eq!(
        Filter::parse("label in cat,dog").unwrap(),
        Filter::In("label".into(), vec![json!("cat"), json!("dog")])
    );
    assert_eq!(
        Filter::parse("width>=100").unwrap(),
        Filter::Range {
            field: "width".into(),
            min: Some(100.0),
            max: None,
            min_exclusive: false,
            max_exclusive: false
        }
    );
    assert_eq!(
        Filter::parse("width<500").unwrap(),
        Filter::Range { field: "width".into(), min: None, max: Some(500.0), min_exclusive: false, max_exclusive: true }
    );
    assert_eq!(Filter::parse("path^=/photos/").unwrap(), Filter::Prefix("path".into(), "/photos/".into()));
    assert_eq!(
        Filter::parse("label=cat and width>100").unwrap(),
        Filter::And(vec![
            Filter::Eq("label".into(), json!("cat")),
            Filter::Range {
                field: "width".into(),
                min: Some(100.0),
                max: None,
                min_exclusive: true,
                max_exclusive: false
            },
        ])
    );
    assert_eq!(Filter::parse("label=\"a and b\"").unwrap(), Filter::Eq("label".into(), json!("a and b")));
    assert_eq!(Filter::parse("width=640").unwrap(), Filter::Eq("width".into(), json!(640)));
    assert_eq!(Filter::parse("ok=true").unwrap(), Filter::Eq("ok".into(), json!(true)));
}

#[test]
fn cli_filters_match() {
    let (c, d) = (cat(), dog());
    let cases = [
        ("label=cat", true, false),
        ("label!=cat", false, true),
        ("label in cat,dog", true, true),
        ("label in bird, fish", false, false),
        ("label not in cat", false, true),
        ("width>=640", true, true),
        ("width>640", false, true),
        ("width<=640", true, false),
        ("width<1600", true, false),
        ("height<1000", true, false), // dog has no height
        ("height!=480", false, true),
        ("path^=/photos/", true, false),
        ("tags=indoor", true, false), // any element of an array
        ("tags in outdoor,x", false, true),
        ("tags^=tab", true, false),
        ("size>=1.5 and size<1.6", true, false),
        ("label=dog and width>1000 and ok=false", false, true),
        ("width=\"640\"", true, false), // numeric string equals number
        ("exif.camera=X100", true, false),
        ("LABEL=cat", false, false), // field names are case-sensitive
        ("label=cat AND width=640", true, false),
        ("label=cat or width>1000", true, true),
        ("label==dog", false, true),
        ("not (label=cat or label=dog)", false, false),
        ("(label=cat or label=bird) and not width>1000", true, false),
        ("label=bird OR (ok=false AND width>=1600)", false, true),
    ];
    for (expr, want_cat, want_dog) in cases {
        let f = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(f.matches(&c), want_cat, "{expr} on cat");
        assert_eq!(f.matches(&d), want_dog, "{expr} on dog");
    }
}

#[test]
fn json_forms_parse_and_match() {
    let (c, d) = (cat(), dog());
    let cases = [
        (json!({"label": "cat"}), true, false),
        (json!({"label": {"in": ["cat", "dog"]}}), true, true),
        (json!({"label": ["dog"]}), false, true),
        (json!({"label": {"ne": "cat"}}), false, true),
        (json!({"label": {"nin": ["cat"]}}), false, true),
        (json!({"width": {"gte": 100, "lt": 640}}), false, false),
        (json!({"width": {"gt": 100, "lte": 640}}), true, false),
        (json!({"path": {"prefix": "/photos/"}}), true, false),
        (json!({"and": [{"label": "cat"}, {"tags": "tabby"}]}), true, false),
        (json!({"or": [{"label": "cat"}, {"width": {"gte": 1000}}]}), true, true),
        (json!({"not": {"label": "cat"}}), false, true),
        (json!({"label": "cat", "ok": true}), true, false),
        (json!({"ok": false}), false, true),
        (json!({}), true, true),
    ];
    for (j, want_cat, want_dog) in cases {
        let f = Filter::from_json(&j).unwrap_or_else(|e| panic!("{j}: {e}"));
        assert_eq!(f.matches(&c), want_cat, "{j} on cat");
        assert_eq!(f.matches(&d), want_dog, "{j} on dog");
    }
    assert_eq!(
        Filter::from_json(&json!({"width": {"gte": 100, "lt": 500}})).unwrap(),
        Filter::Range {
            field: "width".into(),
            min: Some(100.0),
            max: Some(500.0),
            min_exclusive: false,
            max_exclusive: true
        }
    );
    // a filter survives a serde round trip
    let f = Filter::parse("label in cat,dog and width>=10").unwrap();
    let back: Filter = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(back, f);
}

#[test]
fn bad_filters_are_invalid_filter_errors() {
    for expr in [
        "",
        "label",
        "=cat",
        "width>=abc",
        "width<",
        "label in ",
        "a b=c",
        "label=cat and",
        "x<NaN",
        "label=nature,width>=2000",
        "(label=cat",
        "label=cat or",
    ] {
        match Filter::parse(expr) {
            Err(Error::InvalidFilter(msg)) => assert!(!msg.is_empty()),
            other => panic!("{expr:?}: expected InvalidFilter, got {other:?}"),
        }
    }
    for j in [
        json!("label=cat"),
        json!([1, 2]),
        json!({"and": {"label": "cat"}}),
        json!({"or": [1]}),
        json!({"width": {"gte": "big"}}),
        json!({"width": {"between": [1, 2]}}),
        json!({"width": {}}),
        json!({"label": null}),
        json!({"label": {"in": "cat"}}),
        json!({"label": {"prefix": 3}}),
        json!({"label": [{"x": 1}]}),
    ] {
        match Filter::from_json(&j) {
            Err(Error::InvalidFilter(msg)) => assert!(!msg.is_empty()),
            other => panic!("{j}: expected InvalidFilter, got {other:?}"),
        }
    }
}
