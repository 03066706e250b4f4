//! Serde structs that mirror the YAML file one to one (stub).
