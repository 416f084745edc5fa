// Memory limit: keeps allocating (and touching) 1 MiB blocks past the problem's 64 MiB, and
// aborts (a trap) when malloc finally says no.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    static char *blocks[1024];
    unsigned long total = 0;
    for (int i = 0; i < 1024; i++) {
        blocks[i] = malloc(1 << 20);
        if (!blocks[i]) abort();
        memset(blocks[i], i, 1 << 20);
        total += (unsigned char)blocks[i][i];
    }
    printf("%lu\n", total);
    return 0;
}
