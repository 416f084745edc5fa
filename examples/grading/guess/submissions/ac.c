// Accepted: binary search ("? x", then "! x").
#include <stdio.h>
int main(void) {
    long lo = 1, hi = 1000000;
    while (lo < hi) {
        long mid = (lo + hi) / 2; char r[4];
        printf("? %ld\n", mid); fflush(stdout);
        if (scanf("%3s", r) != 1) return 1;
        if (r[0] == '=') { lo = hi = mid; break; }
        if (r[0] == '<') lo = mid + 1; else hi = mid - 1;
    }
    printf("! %ld\n", lo); fflush(stdout);
    return 0;
}
