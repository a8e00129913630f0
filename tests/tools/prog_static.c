/* prog_static.c - linked with -static for test_tally_cli: `tally run` must refuse it. */
int main(void)
{
    return 0;
}
