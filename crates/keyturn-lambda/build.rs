// The same stamp as the CLI: version, commit and build date for the start-up line.
include!("../keyturn/build.rs");
