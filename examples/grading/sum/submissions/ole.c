// Output limit: writes without end.
#include <stdio.h>
int main(void) { for (;;) puts("3333333333333333333333333333333333333333333333333333333333333333"); }
