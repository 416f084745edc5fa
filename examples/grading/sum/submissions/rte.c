// Run-time error: divides by zero (a WebAssembly trap).
#include <stdio.h>
int main(void) { long long a, b; volatile long long zero = 0; if (scanf("%lld %lld", &a, &b) != 2) return 1; printf("%lld\n", (a + b) / zero); return 0; }
