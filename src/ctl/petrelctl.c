/* placeholder: replaced by the petrelctl dispatcher */
#include "ctl/ctl.h"
int main(void) { return 0; }
