# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Sums of a table's rows chosen by a 0/1 sparse matrix: ``X @ B`` for a binary ``X``, by rows of ``B``.

The item-item term of ``recommend`` (:mod:`skmfnet._item_item`) scores a
user's items by summing the rows of EASE's ``B`` of the items the user
rated.  scipy's ``csr_matrix @ ndarray`` does this user by user, on one
thread, multiplying each row by its stored value: every user reads their
rows of ``B`` at random places, so the same rows come from memory again and
again.  It took most of the 1.02 s of ``recommend`` for 1,000 users over
10,000 items (``benchmarks/results/speed/speed_recommend`` as committed in
eadd83d).

:func:`sum_rows` turns the loop around: it takes ``X``'s transpose (for
each row of ``B``, the users who rated that item) and reads ``B`` once, in
order, by blocks of columns, adding each row's block into the blocks of its
users' output rows, which stay in cache.  The values of ``X`` are not read:
they are 1.  The function runs without the GIL, so that the caller's
threads can take disjoint column ranges or disjoint users.  The inner loop is
C (``restrict`` pointers the compiler vectorizes; with GCC on x86-64 Linux,
also an AVX2 copy chosen at load time where the CPU has it).

Built ahead of time with the package, as :mod:`skmfnet._training._kernel`.
"""


cdef extern from *:
    """
    /* One block of columns c0 .. c1 - 1 (module docstring): the baseline
       build is SSE2; GCC adds an AVX2 copy, chosen at load time. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    __attribute__((target_clones("avx2", "default")))
    #endif
    static void skmf_sum_block(const int *indptr, const int *indices, const float *table, float *out,
                               Py_ssize_t n_table_rows, Py_ssize_t width, Py_ssize_t c0, Py_ssize_t c1)
    {
        for (Py_ssize_t j = 0; j < n_table_rows; j++) {
            const float *__restrict row = table + j * width;
            for (int k = indptr[j]; k < indptr[j + 1]; k++) {
                float *__restrict acc = out + (Py_ssize_t)indices[k] * width;
                for (Py_ssize_t c = c0; c < c1; c++)
                    acc[c] += row[c];
            }
        }
    }
    """
    void skmf_sum_block(const int *indptr, const int *indices, const float *table, float *out,
                        Py_ssize_t n_table_rows, Py_ssize_t width, Py_ssize_t c0, Py_ssize_t c1) nogil


def sum_rows(const int[::1] indptr, const int[::1] indices, const float[:, ::1] table, float[:, ::1] out,
             Py_ssize_t start, Py_ssize_t stop, Py_ssize_t block):
    """``out[indices[k], c] += table[j, c]`` for every k in indptr[j] .. indptr[j + 1] - 1, c in start .. stop - 1.

    ``(indptr, indices)``: CSR structure with one row per row of ``table``
    (``X``'s transpose); ``indices`` are rows of ``out``, which has
    ``table``'s width.  Columns go by blocks of ``block``.
    """
    cdef Py_ssize_t width = table.shape[1], n_out = out.shape[0], c0, c1, c, j, k, nnz
    if block < 1 or not 0 <= start <= stop <= width:
        raise ValueError(f"sum_rows: need block >= 1 and 0 <= start <= stop <= {width}; got {block}, {start}, {stop}.")
    if out.shape[1] != width or indptr.shape[0] != table.shape[0] + 1:
        raise ValueError("sum_rows: out, table and the CSR structure disagree in shape.")
    nnz = indptr[table.shape[0]]
    if indptr[0] != 0 or nnz > indices.shape[0]:
        raise ValueError("sum_rows: indptr does not fit indices.")
    for j in range(table.shape[0]):
        if indptr[j + 1] < indptr[j]:
            raise ValueError("sum_rows: indptr decreases.")
    for k in range(nnz):
        if not 0 <= indices[k] < n_out:
            raise ValueError(f"sum_rows: index {indices[k]} is not a row of out (0 .. {n_out - 1}).")
    if nnz == 0 or stop == start:
        return
    with nogil:
        c0 = start
        while c0 < stop:
            c1 = min(c0 + block, stop)
            skmf_sum_block(&indptr[0], &indices[0], &table[0, 0], &out[0, 0], table.shape[0], width, c0, c1)
            c0 = c1
