// Tries to read the host: absolute paths, .. chains, the root. WASI gives it no such path;
// it prints what it found and exits 3 (a run-time error), so nothing outside can reach a
// verdict or a report but "not found".
#include <stdio.h>
#include <dirent.h>
static void try_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (f) { char line[256]; if (fgets(line, sizeof line, f)) printf("read %s: %s", path, line); fclose(f); }
    else printf("no %s\n", path);
}
int main(void) {
    try_file("/etc/passwd");
    try_file("../../../../../../etc/passwd");
    try_file("/data/../../../etc/passwd");
    try_file("/proc/self/environ");
    DIR *d = opendir("/");
    if (d) { struct dirent *e; while ((e = readdir(d))) printf("entry %s\n", e->d_name); closedir(d); }
    return 3;
}
