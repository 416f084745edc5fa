/* sqlite_bench.c -- SQLite as a real program for the start-up benchmark (programs.sh):
 * an in-memory database, N rows inserted in one transaction through a prepared statement,
 * an index built, an aggregate and a join-free range query. Built against the SQLite
 * amalgamation rusqlite bundles (fetch_programs.sh). Usage: sqlite.wasm [rows] (default 1). */
#include <stdio.h>
#include <stdlib.h>
#include "sqlite3.h"

static int fail(sqlite3 *db, const char *what) {
    fprintf(stderr, "sqlite_bench: %s: %s\n", what, sqlite3_errmsg(db));
    return 1;
}

int main(int argc, char **argv) {
    long rows = argc > 1 ? atol(argv[1]) : 1;
    sqlite3 *db;
    sqlite3_stmt *st;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) return fail(db, "open");
    if (sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT); BEGIN;", 0, 0, 0))
        return fail(db, "create");
    if (sqlite3_prepare_v2(db, "INSERT INTO t(k, v) VALUES (?1, ?2)", -1, &st, 0)) return fail(db, "prepare");
    unsigned x = 12345;
    char text[32];
    for (long i = 0; i < rows; i++) {
        x = x * 1103515245u + 12345u;
        snprintf(text, sizeof text, "row-%u", x % 100000u);
        sqlite3_bind_int(st, 1, (int)(x % 1000u));
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) return fail(db, "insert");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(db, "COMMIT; CREATE INDEX tk ON t(k);", 0, 0, 0)) return fail(db, "index");
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*), SUM(k), MAX(v) FROM t WHERE k BETWEEN 100 AND 899", -1, &st, 0))
        return fail(db, "query");
    if (sqlite3_step(st) != SQLITE_ROW) return fail(db, "step");
    printf("%d rows, sum %lld, max %s\n", sqlite3_column_int(st, 0), (long long)sqlite3_column_int64(st, 1),
           sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "-");
    sqlite3_finalize(st);
    sqlite3_close(db);
    return 0;
}
