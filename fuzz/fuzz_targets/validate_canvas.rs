//! Structured canvases (shapes, nested `childShapes`, pools and lanes, `outgoing`/`target`
//! references into a small id pool, overrideids, compensation flags, broken field types) →
//! `validate_editor_json`, so the fuzzer reaches the rule code rather than JSON syntax errors.
//! Same invariants as `validate_editor_json`; also, the document serialised and parsed back
//! (when within the parser's depth limit) must give the same report, from the text too
//! (`validate_editor_json_text`, what publishing runs).
#![no_main]

use flowable_ui_fuzz::canvas::CanvasSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|spec: CanvasSpec| {
    let doc = spec.to_json();
    let bytes = serde_json::to_vec(&doc).expect("a Value serialises");
    let report = domain::validate_editor_json(&doc);
    flowable_ui_fuzz::report::check(&doc, &report, bytes.len());
    if let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        assert_eq!(
            domain::validate_editor_json(&parsed),
            report,
            "the same document gave another report after a JSON round trip"
        );
        let text = std::str::from_utf8(&bytes).expect("serde_json writes UTF-8");
        assert_eq!(
            domain::validate_editor_json_text(text).expect("JSON a Value decoded"),
            report,
            "the document's text gave another report than its value"
        );
    }
});
