/* libcudauser.so: needs libcuda.so.1, which only the driver provides. */
int cuInit(unsigned int flags);
int cuda_user_init(void) { return cuInit(0); }
