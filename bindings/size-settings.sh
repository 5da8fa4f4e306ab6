# Sourced by android/build-rust.sh and ios/build-xcframework.sh: the settings that keep the shipped library small,
# for the mobile release builds only (the host debug build and the tests keep the defaults). Needs `root` (the
# checkout) set by the caller; sets `size_env` (an array of VAR=value for `env`).
# - SQLite without what ChartLink's store never uses: full-text search, R-tree, JSON and date/time SQL functions,
#   dbstat, STAT4, soundex, extension loading, column metadata, UTF-16, trace/progress/authorizer hooks, deprecated
#   and shared-cache APIs (libsqlite3-sys, rusqlite's "bundled", reads LIBSQLITE3_FLAGS): ~0.37 MB.
# - The C code (SQLite, ring's C) at -Oz and without unwind tables: a Rust panic never unwinds through C frames (no
#   Rust callbacks are registered with SQLite); the cost is that a native crash report stops at the first SQLite or
#   ring frame. ~0.1 MB. Rust keeps its unwind tables (panic = "unwind").
# - Build paths (the checkout, the crate registry) trimmed from panic locations: no developer paths in the shipped
#   library.
sqlite_flags="-USQLITE_ENABLE_FTS3 -USQLITE_ENABLE_FTS3_PARENTHESIS -USQLITE_ENABLE_FTS5 -USQLITE_ENABLE_RTREE \
-USQLITE_ENABLE_DBSTAT_VTAB -USQLITE_ENABLE_STAT4 -USQLITE_SOUNDEX -USQLITE_ENABLE_JSON1 -DSQLITE_OMIT_JSON \
-USQLITE_ENABLE_LOAD_EXTENSION -DSQLITE_OMIT_LOAD_EXTENSION -USQLITE_ENABLE_COLUMN_METADATA -DSQLITE_OMIT_DEPRECATED \
-DSQLITE_OMIT_SHARED_CACHE -DSQLITE_OMIT_DATETIME_FUNCS -DSQLITE_OMIT_AUTHORIZATION -DSQLITE_OMIT_TRACE \
-DSQLITE_OMIT_PROGRESS_CALLBACK -DSQLITE_OMIT_DECLTYPE -DSQLITE_OMIT_COMPLETE -DSQLITE_OMIT_GET_TABLE \
-DSQLITE_OMIT_TCL_VARIABLE -DSQLITE_OMIT_UTF16"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
# rustc applies the last prefix that matches: the registry's and the vendored crates' come after the checkout's.
remap="--remap-path-prefix=$root/= --remap-path-prefix=$cargo_home/registry/src/= \
--remap-path-prefix=$root/target/offline/vendor/="
size_env=(
    "LIBSQLITE3_FLAGS=${LIBSQLITE3_FLAGS:-$sqlite_flags}"
    "CFLAGS=${CFLAGS:-} -Oz -fno-asynchronous-unwind-tables -fno-unwind-tables"
    "RUSTFLAGS=${RUSTFLAGS:-} $remap"
)
