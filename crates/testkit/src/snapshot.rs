//! A snapshot of the tracefs state the tools must leave unchanged (leak-matrix tests).
