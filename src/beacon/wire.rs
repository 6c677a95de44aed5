//! Beacon API JSON shapes (quoted integers, hex strings, fork-versioned
//! blocks). Nothing outside `beacon` sees these types.
