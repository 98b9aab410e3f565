//! placeholder, written next
