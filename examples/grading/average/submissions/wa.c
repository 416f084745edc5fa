// Wrong answer: integer division loses the fraction.
#include <stdio.h>
int main(void) {
    int n; double x; long s = 0;
    if (scanf("%d", &n) != 1) return 1;
    for (int i = 0; i < n; i++) { scanf("%lf", &x); s += (long)x; }
    printf("%ld\n", s / n);
    return 0;
}
