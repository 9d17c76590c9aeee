//! Shared pieces of the fuzz targets: the invariants every validation report must satisfy
//! (checked against a small reference model of the simpler rules), and the structured
//! generator of canvas-like documents.

pub mod canvas;
pub mod report;
pub mod storable;
