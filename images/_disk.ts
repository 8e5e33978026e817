/**
 * Steps 5 and 6 of the image build: the ext4 cache partition, the GPT disk
 * (ESP + seed + cache, fixed ids) and its QCOW2 and Parallels conversions.
 * Private to images/.
 *
 * @module
 */
import { runTool } from "./_run.ts";
import { PART_NAMES } from "./_files.ts";
import { clampTimes, derivedUuid, MiB, roundMiB, writeAt, writeText } from "./_fs.ts";
import type { Arch } from "./_inputs.ts";

/** ext4 cache size in MiB (the image's; grow it on the stick). */
export const CACHE_MIB = 128;

/** GPT partition type of an EFI system partition. */
const ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/** GPT partition type of Linux data (seed, cache). */
const LINUX_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
/** The Parallels bundle's image GUID (one image, no snapshots). */
const PARALLELS_IMAGE_GUID = "5fbaabe3-6958-40ff-92a7-860e329aab41";

/** Step 5a: the ext4 cache image (empty CAS tree) in `work`. */
export async function buildCache(
  inp: { readonly arch: Arch; readonly work: string; readonly epoch: number },
): Promise<{ readonly image: string }> {
  const image = `${inp.work}/cache.img`;
  await makeCache(image, `${inp.work}/cache-tree`, inp.epoch, derivedUuid(`${inp.arch}:cache-fs`));
  return { image };
}

/** Writes an ext4 cache image: empty CAS tree, fixed UUID and hash seed, clamped times. */
async function makeCache(path: string, tree: string, epoch: number, uuid: string): Promise<void> {
  await Deno.mkdir(`${tree}/cas/sha256`, { recursive: true });
  await clampTimes(tree, epoch);
  await Deno.remove(path).catch(() => {});
  const f = await Deno.open(path, { write: true, create: true });
  await f.truncate(CACHE_MIB * 1024 * 1024);
  f.close();
  const env = { E2FSPROGS_FAKE_TIME: String(epoch) };
  await runTool("mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    PART_NAMES.cache,
    "-U",
    uuid,
    "-E",
    `hash_seed=${uuid},root_owner=0:0,lazy_itable_init=0`,
    "-d",
    tree,
    path,
  ], { env });
  // mkfs -d copies ctimes from the host tree; clamp every inode we created.
  const cmds = ["/", "/lost+found", "/cas", "/cas/sha256"].flatMap((p) =>
    ["ctime", "mtime", "atime", "crtime"].map((f) => `set_inode_field ${p} ${f} @${epoch}`)
  );
  await runTool("debugfs", ["-w", "-f", "-", path], {
    env,
    stdin: new TextEncoder().encode(cmds.join("\n") + "\n"),
  });
}

/** Byte offsets and sizes of the three partitions and the disk. */
export interface DiskLayout {
  readonly espStart: number;
  readonly espBytes: number;
  readonly seedStart: number;
  readonly seedBytes: number;
  readonly cacheStart: number;
  readonly cacheBytes: number;
  readonly totalBytes: number;
}

/** Whole-MiB layout: 1 MiB of GPT, ESP, seed (its file plus 1 MiB), cache, 1 MiB of backup GPT. */
export function diskLayout(espMib: number, seedFileBytes: number): DiskLayout {
  const espStart = MiB;
  const espBytes = espMib * MiB;
  const seedStart = espStart + espBytes;
  const seedBytes = roundMiB(seedFileBytes) + MiB;
  const cacheStart = seedStart + seedBytes;
  const cacheBytes = CACHE_MIB * MiB;
  const totalBytes = cacheStart + cacheBytes + MiB;
  return { espStart, espBytes, seedStart, seedBytes, cacheStart, cacheBytes, totalBytes };
}

/** The sfdisk script of the disk: fixed label id, partition uuids and names. */
export function gptScript(arch: Arch, l: DiskLayout): string {
  const sector = (n: number) => n / 512;
  const part = (start: number, bytes: number, type: string, id: string, name: string) =>
    `start=${sector(start)}, size=${sector(bytes)}, type=${type}, uuid=${
      derivedUuid(`${arch}:${id}`)
    }, name="${name}"`;
  return [
    "label: gpt",
    `label-id: ${derivedUuid(`${arch}:disk`)}`,
    "unit: sectors",
    "first-lba: 2048",
    part(l.espStart, l.espBytes, ESP_TYPE, "esp", PART_NAMES.esp),
    part(l.seedStart, l.seedBytes, LINUX_TYPE, "seed", PART_NAMES.seed),
    part(l.cacheStart, l.cacheBytes, LINUX_TYPE, "cache", PART_NAMES.cache),
    "",
  ].join("\n");
}

/** What the disk is assembled from. */
export interface DiskInput {
  readonly arch: Arch;
  /** The raw disk image to write. */
  readonly out: string;
  readonly esp: { readonly image: string; readonly mib: number };
  /** The seed partition's content. */
  readonly seed: string;
  readonly cache: string;
}

/** Step 5b: the raw GPT disk with the three partitions written in. */
export async function assembleDisk(
  inp: DiskInput,
): Promise<{ readonly image: string; readonly totalBytes: number }> {
  const layout = diskLayout(inp.esp.mib, (await Deno.stat(inp.seed)).size);
  const image = inp.out;
  await Deno.remove(image).catch(() => {});
  const f = await Deno.open(image, { write: true, create: true });
  await f.truncate(layout.totalBytes);
  f.close();
  await runTool("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", image], {
    stdin: new TextEncoder().encode(gptScript(inp.arch, layout)),
  });
  await writeAt(image, inp.esp.image, layout.espStart);
  await writeAt(image, inp.seed, layout.seedStart);
  await writeAt(image, inp.cache, layout.cacheStart);
  return { image, totalBytes: layout.totalBytes };
}

/** What the conversions read and where they write. */
export interface ConvertInput {
  readonly arch: Arch;
  /** The output folder. */
  readonly out: string;
  /** File name stem (`phase-<arch>`). */
  readonly base: string;
  /** The raw disk. */
  readonly image: string;
  readonly totalBytes: number;
}

/** Step 6: QCOW2, and a Parallels bundle (data file + DiskDescriptor.xml). */
export async function convertImages(
  inp: ConvertInput,
): Promise<{ readonly qcow2: string; readonly parallels: string }> {
  const qcow2 = `${inp.out}/${inp.base}.qcow2`;
  await runTool("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", inp.image, qcow2]);
  const parallels = `${inp.out}/${inp.base}.hdd`;
  await Deno.remove(parallels, { recursive: true }).catch(() => {});
  await Deno.mkdir(parallels, { recursive: true });
  const hds = `${inp.base}.hdd.0.{${PARALLELS_IMAGE_GUID}}.hds`;
  await runTool("qemu-img", [
    "convert",
    "-f",
    "raw",
    "-O",
    "parallels",
    inp.image,
    `${parallels}/${hds}`,
  ]);
  await writeText(
    `${parallels}/DiskDescriptor.xml`,
    diskDescriptor(inp.totalBytes, hds, derivedUuid(`${inp.arch}:parallels`)),
  );
  return { qcow2, parallels };
}

/** The Parallels bundle's DiskDescriptor.xml (one image, no snapshots). */
export function diskDescriptor(sizeBytes: number, dataFile: string, guid: string): string {
  const sectors = Math.ceil(sizeBytes / 512);
  const cylinders = Math.ceil(sectors / (16 * 63));
  return `<?xml version='1.0' encoding='UTF-8'?>
<Parallels_disk_image Version="1.0">
    <Disk_Parameters>
        <Disk_size>${sectors}</Disk_size>
        <Cylinders>${cylinders}</Cylinders>
        <PhysicalSectorSize>512</PhysicalSectorSize>
        <LogicSectorSize>512</LogicSectorSize>
        <Heads>16</Heads>
        <Sectors>63</Sectors>
        <Padding>0</Padding>
        <Encryption>
            <Engine>{00000000-0000-0000-0000-000000000000}</Engine>
            <Data></Data>
        </Encryption>
        <UID>{${guid}}</UID>
        <Name>phase</Name>
        <Miscellaneous>
            <CompatLevel>level2</CompatLevel>
            <Bootable>1</Bootable>
            <SuspendState>0</SuspendState>
        </Miscellaneous>
    </Disk_Parameters>
    <StorageData>
        <Storage>
            <Start>0</Start>
            <End>${sectors}</End>
            <Blocksize>2048</Blocksize>
            <Image>
                <GUID>{${PARALLELS_IMAGE_GUID}}</GUID>
                <Type>Compressed</Type>
                <File>${dataFile}</File>
            </Image>
        </Storage>
    </StorageData>
    <Snapshots>
        <Shot>
            <GUID>{${PARALLELS_IMAGE_GUID}}</GUID>
            <ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID>
        </Shot>
    </Snapshots>
</Parallels_disk_image>
`;
}
