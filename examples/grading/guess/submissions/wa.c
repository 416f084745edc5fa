// Wrong answer: guesses once and leaves.
#include <stdio.h>
int main(void) { printf("! 500000\n"); fflush(stdout); return 0; }
