/*
 * Linked into a copy of isboot.ko by the tests (ld.lld -r): a reference to a kernel
 * function that does not exist, which the kernel linker must refuse by name.
 */
extern int kldrun_no_such_kpi(void);

int	kldrun_test_reference(void);

int
kldrun_test_reference(void)
{
	return (kldrun_no_such_kpi());
}
