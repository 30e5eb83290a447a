# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The sampler's one sequential loop: the rows of an implicit term, each drawn given the others.

:class:`skmfnet._training._gibbs._ImplicitTable` explains the arithmetic.
The rows share ratings, so they cannot be drawn at once as the ids' rows
are: each is a small Gaussian (a ``K x K`` Cholesky factorization) that
moves the sums ``g`` of the rows after it.  In numpy that is a dozen calls
per row, whose overhead was most of a sweep with both implicit terms; here
it is one C loop.  Written with Cython because the package already builds
its kernel that way (``setup.py``).
"""


from libc.math cimport sqrt
from libc.stdlib cimport free, malloc


def draw_implicit_rows(const long long[::1] indptr, const int[::1] owners, const double[::1] weights,
                       const double[:, :, ::1] gram, double[:, ::1] g, double[:, ::1] y, double tau,
                       const double[::1] prior_mean, const double[::1] prior_precision,
                       const double[:, ::1] normals):
    """Draw ``y[l]`` for ``l = 1 .. len(y) - 1`` in turn; ``g`` and ``y`` are updated in place.

    ``indptr``, ``owners``, ``weights``: CSR over the rows of ``y`` of the
    owners (users of the user-side term) whose histories hold the row, and
    their ``c = |N|^-1/2``; ``gram[o]`` and ``g[o]``: the owner's sums of
    ``w x x^T`` and ``w x e``; ``normals``: one standard normal ``K``-vector
    per row.  A row no owner holds is drawn from the prior.  Row 0 is left
    as it is.
    """
    cdef Py_ssize_t n_rows = y.shape[0], k = y.shape[1]
    if gram.shape[1] != k or gram.shape[2] != k or g.shape[1] != k or gram.shape[0] != g.shape[0]:
        raise ValueError("gram must be (owners, K, K) and g (owners, K) for y of K columns")
    if indptr.shape[0] != n_rows + 1 or normals.shape[0] != n_rows or normals.shape[1] != k:
        raise ValueError("indptr needs len(y) + 1 entries and normals the shape of y")
    if prior_mean.shape[0] != k or prior_precision.shape[0] != k or owners.shape[0] != weights.shape[0]:
        raise ValueError("the prior needs K entries and every owner a weight")
    if indptr[n_rows] > owners.shape[0] or indptr[0] < 0:
        raise ValueError("indptr points outside owners")
    for l in range(n_rows):
        if indptr[l + 1] < indptr[l]:
            raise ValueError("indptr must not decrease")
    for l in range(owners.shape[0]):
        if owners[l] < 0 or owners[l] >= g.shape[0]:
            raise ValueError("an owner is outside gram and g")
    cdef double *precision = <double *> malloc(k * k * sizeof(double))
    cdef double *rhs = <double *> malloc(k * sizeof(double))
    cdef double *step = <double *> malloc(k * sizeof(double))
    if precision == NULL or rhs == NULL or step == NULL:
        free(precision); free(rhs); free(step)
        raise MemoryError()
    cdef Py_ssize_t row, p, i, j, o
    cdef double c, total
    try:
        with nogil:
            for row in range(1, n_rows):
                if indptr[row] == indptr[row + 1]:
                    for i in range(k):
                        y[row, i] = prior_mean[i] + normals[row, i] / sqrt(prior_precision[i])
                    continue
                for i in range(k):
                    rhs[i] = prior_precision[i] * prior_mean[i]
                    for j in range(k):
                        precision[i * k + j] = 0.0
                for p in range(indptr[row], indptr[row + 1]):
                    o, c = owners[p], weights[p]
                    for i in range(k):
                        total = g[o, i]
                        for j in range(k):
                            precision[i * k + j] += tau * c * c * gram[o, i, j]
                            total = total + c * gram[o, i, j] * y[row, j]
                        rhs[i] += tau * c * total
                for i in range(k):
                    precision[i * k + i] += prior_precision[i]
                _cholesky(precision, k)  # lower factor L in the lower triangle
                # mean: solve L L^T m = rhs; noise: solve L^T n = z; the draw is m + n
                for i in range(k):  # L u = rhs
                    total = rhs[i]
                    for j in range(i):
                        total -= precision[i * k + j] * rhs[j]
                    rhs[i] = total / precision[i * k + i]
                for i in range(k):
                    rhs[i] += normals[row, i]  # L^T (m + n) = u + z
                for i in range(k - 1, -1, -1):
                    total = rhs[i]
                    for j in range(i + 1, k):
                        total -= precision[j * k + i] * rhs[j]
                    rhs[i] = total / precision[i * k + i]
                for i in range(k):
                    step[i] = rhs[i] - y[row, i]
                    y[row, i] = rhs[i]
                for p in range(indptr[row], indptr[row + 1]):
                    o, c = owners[p], weights[p]
                    for i in range(k):
                        total = 0.0
                        for j in range(k):
                            total = total + gram[o, i, j] * step[j]
                        g[o, i] -= c * total
    finally:
        free(precision)
        free(rhs)
        free(step)


cdef void _cholesky(double *a, Py_ssize_t k) noexcept nogil:
    """In place: the lower triangle of ``a`` (row-major, ``k x k``, positive definite) becomes ``L``."""
    cdef Py_ssize_t i, j, m
    cdef double total
    for j in range(k):
        total = a[j * k + j]
        for m in range(j):
            total -= a[j * k + m] * a[j * k + m]
        a[j * k + j] = sqrt(total)
        for i in range(j + 1, k):
            total = a[i * k + j]
            for m in range(j):
                total -= a[i * k + m] * a[j * k + m]
            a[i * k + j] = total / a[j * k + j]
