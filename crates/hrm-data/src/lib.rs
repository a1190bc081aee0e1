//! hrm-data (work in progress).
