// Interactor (ICPC convention): interactor INPUT ANSWER FEEDBACK_DIR, the submission's stdout
// on stdin and its stdin on stdout. The secret is in INPUT (1..1000000); the submission asks
// "? x" and hears "<", ">" or "=", and must find it in 25 questions. Exit 42 accepted, 43 wrong.
#include <stdio.h>
#include <string.h>
static int verdict(const char *dir, int code, const char *message) {
    char path[512]; snprintf(path, sizeof path, "%s/judgemessage.txt", dir);
    FILE *f = fopen(path, "w"); if (f) { fputs(message, f); fclose(f); }
    return code;
}
int main(int argc, char **argv) {
    if (argc < 4) return 1;
    FILE *in = fopen(argv[1], "r"); long secret;
    if (!in || fscanf(in, "%ld", &secret) != 1) return 1;
    for (int asked = 0; asked < 25; asked++) {
        char op[8]; long x;
        if (scanf("%7s %ld", op, &x) != 2) return verdict(argv[3], 43, "the submission stopped asking");
        if (strcmp(op, "!") == 0) return x == secret ? verdict(argv[3], 42, "found") : verdict(argv[3], 43, "wrong answer");
        puts(x < secret ? "<" : x > secret ? ">" : "=");
        fflush(stdout);
    }
    return verdict(argv[3], 43, "too many questions");
}
