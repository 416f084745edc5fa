// Right on the small group only: 32-bit ints overflow on the large one (30 of 100 points).
#include <stdio.h>
int main(void) { int a, b; if (scanf("%d %d", &a, &b) != 2) return 1; printf("%d\n", a + b); return 0; }
