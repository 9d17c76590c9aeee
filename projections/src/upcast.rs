//! Reading stored events written by older versions of the code.
//!
//! Stored events are never rewritten. When an event's shape changes, its `event_version`
//! is raised and an upcaster here turns the old payload into the current one before it is
//! deserialised, on replay (projections, rebuilds) exactly as on load (the command side
//! calls the same upcasters, see `commands::snapshot`).
//!
//! Example (v1 → v2): `ModelPublished` 1.0 had `{"version", "comment"}`; nothing needed
//! changing so far. See `docs/adr/0002-event-versioning.md` for the procedure.

use domain::ProcessModelEvent;

use crate::error::ProjectionError;
use crate::event::StoredEvent;

/// Decodes a `ProcessModel` event, upcasting older versions first (a current one is
/// decoded straight from the stored text).
pub fn decode_model_event(event: &StoredEvent) -> Result<ProcessModelEvent, ProjectionError> {
    if !domain::upcast::needs_upcast(&event.event_type, &event.event_version) {
        return event.decode_payload();
    }
    let payload = domain::upcast::upcast_model_event(
        &event.event_type,
        &event.event_version,
        event.payload.value().clone(),
    );
    serde_json::from_value(payload).map_err(|source| ProjectionError::Decode {
        global_position: event.global_position,
        event_type: event.event_type.clone(),
        source,
    })
}
