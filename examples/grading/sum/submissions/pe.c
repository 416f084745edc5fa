// Presentation error: the right number, with a space too many (the problem compares exactly).
#include <stdio.h>
int main(void) { long long a, b; if (scanf("%lld %lld", &a, &b) != 2) return 1; printf("%lld \n", a + b); return 0; }
