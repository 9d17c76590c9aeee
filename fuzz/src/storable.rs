//! What PostgreSQL can store: its `text` and `jsonb` types refuse U+0000 anywhere in a string
//! (and a `jsonb` key), so a value holding one turns an insert into a server error.

use serde_json::Value;

/// True when some string or key anywhere in `value` holds U+0000. Walks with an explicit
/// stack, so any depth is fine.
pub fn holds_nul(value: &Value) -> bool {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) if s.contains('\0') => return true,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (key, item) in map {
                    if key.contains('\0') {
                        return true;
                    }
                    stack.push(item);
                }
            }
            _ => {}
        }
    }
    false
}
