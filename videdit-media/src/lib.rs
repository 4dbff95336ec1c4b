//! Media processing for videdit (work in progress).
