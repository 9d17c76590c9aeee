//! Raw bytes → JSON → `validate_editor_json`, as `POST /api/v1/process-models/validate` does.
//! The validator must never panic, must stay linear in the input, and its report must keep
//! the invariants in `flowable_ui_fuzz::report` (order, NotACanvas alone, agreement with a
//! reference model of the simpler rules, bounded size, serde round trip). The text path
//! (`validate_editor_json_text`, what publishing runs) must give the same report.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let report = domain::validate_editor_json(&doc);
    flowable_ui_fuzz::report::check(&doc, &report, data.len());
    let text = std::str::from_utf8(data).expect("serde_json accepted it, so it is UTF-8");
    let from_text = domain::validate_editor_json_text(text).expect("JSON a Value decoded");
    assert_eq!(from_text, report, "text and value reports differ");
    // The command side wraps the same document first; that must not panic either.
    if let Ok(json) = domain::EditorJson::parse(doc) {
        assert!(json.to_value().is_object());
    }
});
