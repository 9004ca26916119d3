//! Checkpoints written by older versions, rewritten in the current form on load, so that an old
//! run resumes with the arithmetic it began with.
use crate::search::records::CHECKPOINT_VERSION;

/// Version 2 runs scored on the test set and scored every genome once: the fields that say so
/// now (`score_on`, `max_seed_groups`) are written in, so the run resumes as it began.
pub fn migrate_v2(v: serde_json::Value) -> std::result::Result<serde_json::Value, String> {
    use serde_json::{json, Value};
    let mut v = v;
    let config = v
        .get_mut("config")
        .and_then(Value::as_object_mut)
        .ok_or("field `config`: missing")?;
    let tasks = config
        .get_mut("protocol")
        .and_then(|p| p.get_mut("tasks"))
        .and_then(Value::as_array_mut)
        .ok_or("field `config.protocol.tasks`: missing")?;
    for task in tasks.iter_mut().filter_map(Value::as_object_mut) {
        task.entry("score_on").or_insert(json!("test"));
    }
    if let Some(search) = config.get_mut("search").and_then(Value::as_object_mut) {
        search.entry("max_seed_groups").or_insert(json!(1));
    } else {
        config.insert("search".into(), json!({ "max_seed_groups": 1 }));
    }
    let n = v
        .get("population")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let o = v.as_object_mut().ok_or("not a JSON object")?;
    o.entry("reevaluate").or_insert(json!(vec![Value::Null; n]));
    v["version"] = json!(3);
    Ok(v)
}

/// Version 3 computed in NCHW and scored 1,000 images a pass: its tasks (search and held-out)
/// say so now, so the run resumes with the arithmetic it began with.
pub fn migrate_v3(mut v: serde_json::Value) -> std::result::Result<serde_json::Value, String> {
    use serde_json::{json, Value};
    let config = v.get_mut("config").ok_or("field `config`: missing")?;
    if config.pointer("/protocol/tasks").is_none() {
        return Err("field `config.protocol.tasks`: missing".into());
    }
    for tasks in ["/protocol/tasks", "/holdout/protocol/tasks"] {
        let tasks = config.pointer_mut(tasks).and_then(Value::as_array_mut);
        for task in tasks.into_iter().flatten().filter_map(Value::as_object_mut) {
            task.entry("layout").or_insert(json!("nchw"));
            task.entry("score_batch").or_insert(json!(1000));
        }
    }
    v["version"] = json!(CHECKPOINT_VERSION);
    Ok(v)
}

/// Version 1 kept the two stages in parallel fields (`memo`/`screen_memo`, `baseline`/
/// `screen_baseline`, `scores`/`screens`, where `scores` also held the screening evaluations of
/// genomes not promoted); version 2 keeps one `StageState` per stage.
pub fn migrate_v1(mut v: serde_json::Value) -> std::result::Result<serde_json::Value, String> {
    use serde_json::{json, Value};
    let o = v.as_object_mut().ok_or("not a JSON object")?;
    let n = o
        .get("population")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let full_results: Vec<Value> = match o.remove("scores") {
        Some(Value::Array(scores)) => scores
            .into_iter()
            .map(|e| match e.get("stage").and_then(Value::as_str) {
                Some("full") => e,
                _ => Value::Null,
            })
            .collect(),
        _ => return Err("field `scores`: missing".into()),
    };
    let screens = match o.remove("screens") {
        Some(Value::Array(s)) if !s.is_empty() => s,
        _ => vec![Value::Null; n],
    };
    let mut take = |key: &str| o.remove(key).unwrap_or(Value::Null);
    let full =
        json!({ "baseline": take("baseline"), "memo": take("memo"), "results": full_results });
    let screen_memo = match take("screen_memo") {
        Value::Null => json!({}),
        memo => memo,
    };
    let screen =
        json!({ "baseline": take("screen_baseline"), "memo": screen_memo, "results": screens });
    o.insert("full".into(), full);
    o.insert("screen".into(), screen);
    o.entry("reused").or_insert(json!(0));
    o.insert("version".into(), json!(2));
    Ok(v)
}
