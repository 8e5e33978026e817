/**
 * kexec/: hands over to exactly the verified kernel (issue #5).
 *
 * @module
 */
export {};
