//! Plugs the domain's upcasters into cqrs-es, so loading an aggregate reads old event
//! versions exactly as the projections do on replay.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use domain::upcast::{needs_upcast, upcast_model_event};

/// All `ProcessModel` upcasters as one cqrs-es upcaster.
pub struct ModelEventUpcaster;

impl EventUpcaster for ModelEventUpcaster {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        needs_upcast(event_type, event_version)
    }

    fn upcast(&self, event: SerializedEvent) -> SerializedEvent {
        let payload = upcast_model_event(&event.event_type, &event.event_version, event.payload);
        SerializedEvent { payload, ..event }
    }
}
