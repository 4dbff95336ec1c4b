//! Media processing for videdit (work in progress).

pub mod analyze;
