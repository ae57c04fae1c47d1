//! A result handed to the replica that owns its server: encoded into a `handoff` row by the
//! replica that took it (its ingest, in the batch's transaction), decoded by the owner.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::IngestItem;
use crate::probe::ProbeReport;
use crate::store::HandoffRecord;

/// The row's payload: the item, with its tool list (which the report's JSON leaves out).
#[derive(Serialize, Deserialize)]
struct Payload {
    region: String,
    started_at: i64,
    vantage_unhealthy: bool,
    report: ProbeReport,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
}

/// `item` as a handoff row (taken at `now`).
pub fn encode(item: &IngestItem, now: i64) -> HandoffRecord {
    let payload = serde_json::json!({
        "region": item.region,
        "started_at": item.started_at,
        "vantage_unhealthy": item.vantage_unhealthy,
        "report": item.report,
        "tools": item.report.tools,
    });
    HandoffRecord {
        id: item.result_id.clone(),
        bucket: crate::shard::bucket_of(&item.server_id),
        server_id: item.server_id.clone(),
        payload: payload.to_string(),
        created_at: now,
    }
}

/// The item a handoff row holds; an error names what does not read back.
pub fn decode(row: &HandoffRecord) -> Result<IngestItem, String> {
    let p: Payload = serde_json::from_str(&row.payload)
        .map_err(|e| format!("handed-off result {}: {e}", row.id))?;
    let mut report = p.report;
    report.tools = p.tools;
    Ok(IngestItem {
        result_id: row.id.clone(),
        server_id: row.server_id.clone(),
        region: p.region,
        started_at: p.started_at,
        report,
        vantage_unhealthy: p.vantage_unhealthy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_reads_back_whole_with_its_tools() {
        let mut report = ProbeReport::new("http://x/mcp".into(), "2026-01-01T00:00:00Z".into());
        report.tools = vec![serde_json::json!({"name": "echo", "inputSchema": {"type": "object"}})];
        let item = IngestItem {
            result_id: "r1".into(),
            server_id: "s1".into(),
            region: "eu-west".into(),
            started_at: 42,
            report,
            vantage_unhealthy: true,
        };
        let row = encode(&item, 7);
        assert_eq!(row.bucket, crate::shard::bucket_of("s1"));
        let back = decode(&row).unwrap();
        assert_eq!(back.result_id, "r1");
        assert_eq!(back.region, "eu-west");
        assert_eq!(back.started_at, 42);
        assert!(back.vantage_unhealthy);
        assert_eq!(back.report.tools, item.report.tools);
        assert_eq!(back.report.verdict, item.report.verdict);
    }

    #[test]
    fn a_payload_that_does_not_read_back_is_named() {
        let row = HandoffRecord {
            id: "r9".into(),
            bucket: 1,
            server_id: "s".into(),
            payload: "{\"region\": 3}".into(),
            created_at: 0,
        };
        let e = decode(&row).err().unwrap();
        assert!(e.contains("r9"), "{e}");
    }
}
