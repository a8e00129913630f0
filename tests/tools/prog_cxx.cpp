// prog_cxx.cpp - operator new and delete in their variants, under `tally run`:
// new/delete, new[]/delete[], sized delete, aligned new/delete, nothrow new; and
// one leak of new char[77] from leak_cxx; a malloc from a function template (its
// name has < and >: `tally plot` must escape it), freed.
#include <new>
#include <cstdlib>

struct alignas(64) Aligned {
    char x[64];
};

static void *volatile sink;

__attribute__((noinline)) static void leak_cxx()
{
    sink = new char[77]; // CXX_LEAK_LINE
    sink = nullptr;
}

template <typename T> __attribute__((noinline)) T *make_array(std::size_t n)
{
    return static_cast<T *>(std::malloc(n * sizeof(T)));
}

int main()
{
    Aligned *t = make_array<Aligned>(3);        // malloc 192
    sink = t;
    std::free(t);
    int *a = new int(5);                        // new 4
    sink = a;
    delete a;
    int *b = new int[10];                       // new[] 40
    sink = b;
    delete[] b;
    Aligned *c = new Aligned;                   // aligned new 64
    sink = c;
    delete c;
    Aligned *d = new Aligned[2];                // aligned new[] 128
    sink = d;
    delete[] d;
    char *e = new (std::nothrow) char[100];     // nothrow new[] 100
    sink = e;
    delete[] e;
    double *f = new (std::nothrow) double;      // nothrow new 8
    sink = f;
    delete f;
    leak_cxx();
    return 0;
}
