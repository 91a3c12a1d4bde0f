/* placeholder: replaced by the engine main */
int main(void) { return 0; }
