//! Record ids in JSON output: 64-bit ids are written as decimal strings, as the HTTP API does.
//!
//! A record id is an FNV-1a hash of the file's path, so most ids are above 2^53: JavaScript and
//! `jq` read a bare JSON number that large as a float and round it (5373723258078743994 becomes
//! 5373723258078744000), and the rounded id then names no record. Strings survive every JSON
//! reader; the CLI's `--id` and the API accept them back.

use serde::Serializer;

/// Serialize one id as a decimal string (`#[serde(serialize_with = "json_ids::one")]`).
pub fn one<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// Serialize a list of ids as decimal strings (`#[serde(serialize_with = "json_ids::many")]`).
pub fn many<S: Serializer>(ids: &[u64], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ids.iter().map(u64::to_string))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize)]
    struct Row {
        #[serde(serialize_with = "super::one")]
        id: u64,
        #[serde(serialize_with = "super::many")]
        ids: Vec<u64>,
    }

    #[test]
    fn ids_are_strings_that_round_trip() {
        let row = Row { id: 5_373_723_258_078_743_994, ids: vec![1, u64::MAX] };
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(json, r#"{"id":"5373723258078743994","ids":["1","18446744073709551615"]}"#);
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["id"].as_str().unwrap().parse::<u64>().unwrap(), row.id);
    }
}
