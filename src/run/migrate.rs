//! Checkpoints written by older versions, rewritten in the current form on load, so that an old
//! run resumes with the arithmetic it began with.
use serde_json::Value;

/// A checkpoint of version `version` rewritten in the current form, one version at a time.
pub fn migrate(mut v: Value, version: u64) -> std::result::Result<Value, String> {
    type Step = fn(Value) -> std::result::Result<Value, String>;
    const STEPS: [Step; 4] = [migrate_v1, migrate_v2, migrate_v3, migrate_v4];
    let first = version.checked_sub(1).ok_or("version 0")? as usize;
    for step in STEPS
        .get(first..)
        .ok_or("a version newer than this evolve")?
    {
        v = step(v)?;
    }
    Ok(v)
}

/// Version 4 kept the records loose at the top level, with `best` a copy of the first leader;
/// version 5 groups them as DEAP does (population, stages, hall of fame, logbook), records each
/// genome's origin (a version-4 population's is unrecorded), and its GA draws terms from
/// `ga.kinds`, which a version-4 run sets to the kinds it knew.
fn migrate_v4(mut v: Value) -> std::result::Result<Value, String> {
    use serde_json::json;
    let o = v.as_object_mut().ok_or("not a JSON object")?;
    let mut take = |key: &str| o.remove(key).ok_or(format!("field `{key}`: missing"));
    let genomes = take("population")?;
    let n = genomes.as_array().map_or(0, Vec::len);
    let population = json!({
        "generation": take("generation")?,
        "genomes": genomes,
        "reevaluate": take("reevaluate")?,
        "origins": vec![json!({ "kind": "unrecorded" }); n],
    });
    let stages = json!({
        "screen": take("screen")?,
        "full": take("full")?,
        "holdout": take("holdout").unwrap_or(json!({ "baseline": null, "memo": {}, "results": [] })),
    });
    let hall_of_fame = json!({
        "leaders": take("leaders").unwrap_or(json!([])),
        "best_holdout": take("best_holdout").unwrap_or(Value::Null),
    });
    let logbook = json!({
        "generations": take("generations")?,
        "total_steps": take("total_steps")?,
        "evaluations": take("evaluations")?,
        "reused": take("reused")?,
        "history_len": take("history_len")?,
    });
    // The first leader, which `best` copied.
    let _ = take("best");
    // Version 4's GA drew terms from the eleven kinds it knew; the run goes on drawing from them.
    let kinds = json!([
        "gradient",
        "momentum",
        "rms_norm",
        "adam",
        "sign",
        "unit",
        "nesterov",
        "sign_momentum",
        "lion",
        "add_sign",
        "power_sign"
    ]);
    for ga in ["/config/ga", "/ga/params"] {
        if let Some(ga) = v.pointer_mut(ga).and_then(Value::as_object_mut) {
            ga.entry("kinds").or_insert(kinds.clone());
        }
    }
    let o = v.as_object_mut().ok_or("not a JSON object")?;
    for (key, value) in [
        ("population", population),
        ("stages", stages),
        ("hall_of_fame", hall_of_fame),
        ("logbook", logbook),
    ] {
        o.insert(key.into(), value);
    }
    o.insert("version".into(), json!(5));
    Ok(v)
}

/// Version 2 runs scored on the test set and scored every genome once: the fields that say so
/// now (`score_on`, `max_seed_groups`) are written in, so the run resumes as it began.
fn migrate_v2(v: Value) -> std::result::Result<Value, String> {
    use serde_json::json;
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
fn migrate_v3(mut v: Value) -> std::result::Result<Value, String> {
    use serde_json::json;
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
    v["version"] = json!(4);
    Ok(v)
}

/// Version 1 kept the two stages in parallel fields (`memo`/`screen_memo`, `baseline`/
/// `screen_baseline`, `scores`/`screens`, where `scores` also held the screening evaluations of
/// genomes not promoted); version 2 keeps one `StageState` per stage.
fn migrate_v1(mut v: Value) -> std::result::Result<Value, String> {
    use serde_json::json;
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
