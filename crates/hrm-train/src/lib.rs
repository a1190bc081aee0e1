//! hrm-train (work in progress).
