//! hrm-act (work in progress).
