#include <stdio.h>
int main(void) { puts("cairn: under construction"); return 1; }
