/*
 * template-render.c: render one text with src/template.c, for
 * tests/integration/test_template.py, which holds it to the planner's SQL.
 *
 *   template-render TEXT COMPANY NIB PERIOD YYYY-MM-DD DAYS_LEFT LANGUAGE
 *
 * Prints the rendering without a newline. Not installed.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "template.h"

int
main(int argc, char **argv)
{
	struct template_values v;
	char *out;

	if (argc != 8 || sscanf(argv[5], "%d-%d-%d", &v.deadline_year, &v.deadline_month, &v.deadline_day) != 3) {
		fprintf(stderr, "usage: template-render TEXT COMPANY NIB PERIOD YYYY-MM-DD DAYS_LEFT LANGUAGE\n");
		return 2;
	}
	v.company_name = argv[2];
	v.nib = argv[3];
	v.period = argv[4];
	v.days_left = atoi(argv[6]);
	v.language = argv[7];
	out = template_render(argv[1], &v);
	fputs(out, stdout);
	free(out);
	return 0;
}
