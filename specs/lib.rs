//! Nothing: this package holds the library's specifications (`main.rs`, a test target).
