// Waits for an answer before asking anything: both sides wait (idle: ILE within the wall limit).
#include <stdio.h>
int main(void) { char r[4]; if (scanf("%3s", r) != 1) return 1; printf("! 1\n"); return 0; }
